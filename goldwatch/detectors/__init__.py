"""goldwatch.detectors"""

"""goldwatch.golden_sets"""

"""goldwatch.integrity"""

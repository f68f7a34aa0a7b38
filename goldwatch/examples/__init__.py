"""goldwatch.examples"""

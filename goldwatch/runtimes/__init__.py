"""goldwatch.runtimes"""

"""goldwatch.watchdog"""

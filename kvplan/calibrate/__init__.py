"""`kvplan calibrate`: torch microbenchmarks of a serving node -> a calibrated hardware profile.

torch is imported only inside this package's functions, never at import time (docs/calibration.md).
"""

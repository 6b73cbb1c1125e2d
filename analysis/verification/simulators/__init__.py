"""NumPy simulators of the learning processes the models' bounds assume."""

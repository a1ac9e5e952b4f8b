"""Engine: adaptive EQ design and filtering, and the optimisation of gains and EQ depth."""

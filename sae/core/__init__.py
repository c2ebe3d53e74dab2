"""The math: configs, the model, the objective (the formulas), the gradient check, the hand-derived
pass, optimiser steps and L-BFGS. Depends on torch and numpy only.
"""

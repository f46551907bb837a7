"""Unit cells whose homogenized response reduces to a few ODEs (paper 'rno' sections 3 and 4).

``composite1d``: N elasto-viscoplastic segments in series; the exact reduction (eq. 11-12) is one
ODE for the mean plastic strain, integrated with scipy's Radau.
``laminate``: two J2 elasto-viscoplastic layers with uniform fields per layer (eq. 17-24),
backward Euler in time with a Newton solve of the interface conditions per step.
"""

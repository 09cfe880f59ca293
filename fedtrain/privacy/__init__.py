"""Measured privacy: the membership-inference audit of a finished run (`crypten-fl audit`).

What protects a hospital's update before it is shared (checks, hospital-level DP) is in
fedtrain/updates/.
"""

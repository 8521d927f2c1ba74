"""Validation corpus for the sensor analysis (issue 13): realistic rig data, scored."""

"""Jobs, schedules and sensors: what runs the graph without a person."""

"""The data contract: pandera schemas, reading and checking a landing folder, conditioning."""

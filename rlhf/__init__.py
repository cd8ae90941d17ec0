"""Framework-free learning: preference pairs, reward model and captioner RL with TRL.

Never imports Django; ``labelstudio_site`` calls into it.
"""

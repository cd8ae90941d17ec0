"""The framework-free pipeline: cover image -> embedding -> neighbours -> JSON features -> prompt -> audio.

Never imports Django; ``labelstudio_site`` calls into it.
"""

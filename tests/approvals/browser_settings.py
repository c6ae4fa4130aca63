"""Settings of the daphne the browser test starts: the test settings, plus WhiteNoise serving
static files from the finders (the test settings drop it; the inbox needs its script)."""

from config.settings.test import *  # noqa: F403

MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

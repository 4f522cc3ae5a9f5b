"""The WSGI entry point for production servers: `gunicorn -w 1 --threads 100 logstream.web.wsgi:app`.

Configure it with environment variables: LOGSTREAM_DATA_DIR, LOGSTREAM_TOKEN
and LOGSTREAM_CORS (space-separated origins).
"""

import os

from logstream.web.app import create_app

app = create_app(cors=os.environ.get("LOGSTREAM_CORS", "").split() or None)

from django.contrib import admin
from rest_framework.authtoken.models import TokenProxy

# DRF's tokens no longer authenticate anything (named, hashed ApiTokens replaced them, see
# rlhf_platform/models.py): a token added there would look valid and never work.
admin.site.unregister(TokenProxy)

"""The labeling page: a shell for signed-in labelers; the page's script does the rest through the labeler API."""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from labelstudio_site.studio.roles import is_labeler


@never_cache
@ensure_csrf_cookie
@require_GET
def label(request: HttpRequest) -> HttpResponse:
    """Anonymous users go to the sign-in page; signed-in users who are not labelers get 403.

    No task data is rendered here: the script asks POST /api/label/next/ for it, so a reload resumes the open task.
    """
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not is_labeler(request.user):
        raise PermissionDenied("labelers only")
    return render(request, "studio/label.html")

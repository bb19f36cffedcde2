"""What every page with a form needs: the posted form after its CSRF check, and a
safe place to go next."""

import hmac

from plugin.errors import Forbidden
from plugin.routing import HOME


def checked_form(request):
    """The form, after checking its csrf_token when the guard left that to us."""
    form = request.form()
    if request.form_csrf and not hmac.compare_digest(
        form.get("csrf_token", "").encode(), request.principal.csrf.encode()
    ):
        raise Forbidden("CSRF token missing or wrong; reload the page and try again")
    return form


def safe_next(target):
    """Only our own pages: never an open redirect to another site."""
    if isinstance(target, str) and target.startswith(HOME) and "//" not in target and "\\" not in target:
        return target
    return HOME

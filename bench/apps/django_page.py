"""A Django page rendered from a template, as one WSGI module (settings configured here), for
wsgid (`--wsgi-app=django_page:application`) and for gunicorn."""
import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.template import engines  # noqa: E402
from django.urls import path  # noqa: E402

PAGE = engines["django"].from_string(
    "<!doctype html><html><head><title>{{ title }}</title></head><body><h1>{{ title }}</h1><ul>"
    "{% for item in items %}<li class=\"{% cycle 'odd' 'even' %}\">{{ item.name|title }}: "
    "{{ item.price|floatformat:2 }}</li>{% endfor %}</ul><p>{{ items|length }} items</p></body></html>"
)
ITEMS = [{"name": "item number %d" % i, "price": i * 1.25} for i in range(20)]


def page(request):
    return HttpResponse(PAGE.render({"title": "Hello from Django", "items": ITEMS}))


urlpatterns = [path("", page)]
application = get_wsgi_application()

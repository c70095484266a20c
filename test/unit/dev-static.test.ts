/** `wsgid dev`'s static folders (src/cli/dev-static.ts): the parts that are pure. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { djangoSettingsModule, staticRoute } from '../../src/cli/dev-static.js';

test("the settings module is read from manage.py as startproject writes it", () => {
  assert.equal(djangoSettingsModule("    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"), 'mysite.settings');
  assert.equal(djangoSettingsModule('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a.b.prod")'), 'a.b.prod');
  assert.equal(djangoSettingsModule('print("no settings here")'), undefined);
});

test('STATIC_URL becomes a mongrel2 route; a URL on another host does not', () => {
  assert.equal(staticRoute('/static/'), '/static/');
  assert.equal(staticRoute('static/'), '/static/'); // Django 4's startproject
  assert.equal(staticRoute('/assets'), '/assets/');
  assert.equal(staticRoute('https://cdn.example/static/'), undefined);
  assert.equal(staticRoute('//cdn.example/static/'), undefined);
  assert.equal(staticRoute('/'), undefined);
});

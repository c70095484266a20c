// A request filter (IPreRequestFilter + IPostRequestFilter): `before` rewrites the legacy
// /greet/<name> URLs to /hello/<name>; `after` tags every response and counts time spent.
export default {
  name: 'headers',
  before(request) {
    if (request.url.startsWith('/greet/')) request.url = '/hello/' + request.url.slice('/greet/'.length);
    request.locals.set('filtered', true);
  },
  after(info) {
    info.headers['x-filtered-by'] = 'custom-loader example';
    if (info.error) info.headers['x-app-error'] = String(info.error);
  },
};

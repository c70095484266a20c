/**
 * The layer order of src/ (docs/INTERNALS.md), checked by test/unit/layers.test.ts: a module may
 * import its own layer and the layers below it, never a layer above. Lowest first.
 */
const LAYERS = [
  ['shared', 'src/(version|broadcast|errors)\\.ts$', 'the version string, the broadcast API, error classes and codes'],
  ['protocol', 'src/protocol/', 'pure mongrel2 codec'],
  ['http', 'src/http/', 'pure HTTP/1.1 helpers shared by gateways'],
  ['fs', 'src/fs/', 'files below the app folder, opened without following symlinks'],
  ['config', 'src/config/', 'the option table, Settings, wsgid.json'],
  ['log', 'src/log/', 'logger, access log'],
  ['app-folder', 'src/app-folder/', 'layout, pid files, status file, privileges'],
  ['systemd', 'src/systemd/', 'sd_notify (Type=notify) and the service unit'],
  ['mongrel2', 'src/mongrel2/', 'the mongrel2.conf for an app folder, the private mongrel2 of wsgid dev, wsgid check'],
  ['transport', 'src/transport/', 'reply sockets towards mongrel2'],
  ['metrics', 'src/metrics/', 'request counters, /proc samples, Prometheus text'],
  ['lifecycle', 'src/lifecycle/', 'the master ↔ worker contract: boot config, IPC messages, exit codes'],
  ['dispatch', 'src/dispatch/', "the master's side of the request flow"],
  ['gateways', 'src/gateways/', 'fetch, node, wsgi, asgi'],
  ['loaders', 'src/loaders/', 'find the app, pick its gateway'],
  ['plugins', 'src/plugins/', 'loader, filter and command plugins'],
  ['worker', 'src/worker/', 'the request loop of a serving process'],
  ['master', 'src/master/', 'supervision'],
  ['cli', 'src/cli/', 'commands'],
  ['entry', 'src/index\\.ts$', 'the public API'],
];

const forbidden = LAYERS.flatMap(([name, path], index) => {
  const above = LAYERS.slice(index + 1);
  if (above.length === 0) return [];
  return [
    {
      name: `layer-${name}`,
      comment: `${name} (${LAYERS[index][2]}) must not import a layer above it: ${above.map(([n]) => n).join(', ')}`,
      severity: 'error',
      from: { path: `^${path}` },
      to: { path: above.map(([, p]) => `^${p}`) },
    },
  ];
});

module.exports = {
  forbidden: [
    ...forbidden,
    {
      name: 'unlayered',
      comment: 'every module under src/ belongs to a layer (add a new folder to LAYERS)',
      severity: 'error',
      from: { path: '^src/', pathNot: LAYERS.map(([, p]) => `^${p}`) },
      to: {},
    },
    { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};

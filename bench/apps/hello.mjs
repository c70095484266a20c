// Hello world as a fetch app (Web standard Request → Response).
export default {
  fetch: () => new Response('Hello, world!'),
};

export function GET() {
  return new Response('Hello from a custom loader plugin behind mongrel2\n');
}

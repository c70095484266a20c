export function GET(request, name) {
  return Response.json({ hello: name || 'world', via: 'custom-loader' });
}

export async function POST(request, name) {
  return Response.json({ hello: name || 'world', received: await request.text(), via: 'custom-loader' });
}

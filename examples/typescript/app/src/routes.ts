// Plain TypeScript: types, an enum, a class with parameter properties. No build step: wsgid runs
// the source (through tsx) because the entry is a .ts file.
export enum Greeting {
  Hello = 'Hello',
  Hi = 'Hi',
}

export interface Hello {
  readonly hello: string;
  readonly via: 'typescript';
  readonly greeting: Greeting;
}

export class Greeter {
  constructor(private readonly greeting: Greeting) {}

  greet(name: string): Hello {
    return { hello: name, via: 'typescript', greeting: this.greeting };
  }
}

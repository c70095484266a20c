/**
 * The trick behind LightRequest and LightResponse: a light class whose prototype chain reaches the
 * standard class (so `instanceof` holds) and which hands every member it does not implement itself
 * to a standard object it builds on first use.
 */
export function delegateToStandard<T extends object>(
  light: { prototype: T },
  standard: { prototype: object; name: string },
  realOf: (self: T) => object,
): void {
  const lightProto = light.prototype;
  const standardProto = standard.prototype;
  Object.setPrototypeOf(lightProto, standardProto);
  for (const name of Object.getOwnPropertyNames(standardProto)) {
    if (name === 'constructor' || Object.prototype.hasOwnProperty.call(lightProto, name)) continue;
    const descriptor = Object.getOwnPropertyDescriptor(standardProto, name)!;
    if (typeof descriptor.get === 'function') {
      Object.defineProperty(lightProto, name, {
        configurable: true,
        enumerable: descriptor.enumerable,
        get(this: T) {
          return Reflect.get(standardProto, name, realOf(this));
        },
      });
    } else if (typeof descriptor.value === 'function') {
      Object.defineProperty(lightProto, name, {
        configurable: true,
        writable: true,
        value(this: T, ...args: unknown[]) {
          const real = realOf(this);
          return (Reflect.get(real, name) as (...a: unknown[]) => unknown).apply(real, args);
        },
      });
    }
  }
  Object.defineProperty(lightProto, Symbol.toStringTag, { value: standard.name });
}

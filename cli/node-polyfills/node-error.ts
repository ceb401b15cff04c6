/** A Node-style error: the class Node throws, with its `code`. */
export const nodeError = (Ctor: ErrorConstructor, message: string, code: string) => Object.assign(new Ctor(message), { code });

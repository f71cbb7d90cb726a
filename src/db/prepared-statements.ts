import pg from 'pg';

/**
 * Gives every distinct statement text a name, so that node-postgres prepares it once per connection
 * and PostgreSQL parses and plans it once instead of on every call. Names are process-wide (one text,
 * one name) and capped: past `max` texts, or for very long texts, statements run unnamed as before,
 * so neither this map nor any server connection grows without bound.
 */
export class StatementNames {
  readonly #names = new Map<string, string>();

  constructor(
    private readonly max = 500,
    private readonly maxLength = 10_000,
  ) {}

  nameOf(text: string): string | null {
    const known = this.#names.get(text);
    if (known !== undefined) return known;
    if (this.#names.size >= this.max || text.length > this.maxLength) return null;
    const name = `steady_${this.#names.size + 1}`;
    this.#names.set(text, name);
    return name;
  }

  get size(): number {
    return this.#names.size;
  }
}

/**
 * A pg.Client class for pg.Pool's `Client` option that runs parameterised queries (Kysely's, and
 * `query(text, values)` calls) as named prepared statements. Simple-protocol scripts (`query(text)`)
 * and explicit query configs are passed through untouched.
 *
 * Not for a transaction-mode pooler older than PgBouncer 1.21: prepared statements live on a server
 * connection, which such a pooler does not keep for the client (STEADY_DB_PREPARE=off).
 */
export function preparingClient(names: StatementNames): typeof pg.Client {
  return class PreparingClient extends pg.Client {
    // pg's overloads cannot be re-declared one by one; this override only routes the (text, values) form.
    override query(...args: unknown[]): never {
      const [text, values, callback] = args;
      if (typeof text === 'string' && Array.isArray(values) && callback === undefined) {
        const name = names.nameOf(text);
        if (name !== null) return super.query({ name, text, values }) as never;
      }
      return (super.query as (...a: unknown[]) => never)(...args);
    }
  };
}

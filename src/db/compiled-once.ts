import { CompiledQuery, DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type Compilable, type QueryResult, type RawBuilder } from 'kysely';
import type { Database } from './schema.ts';

/** Builds statements only (both backends compile PostgreSQL's dialect); it never runs one. */
const builder = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** The stand-in of one argument while a statement is compiled. */
class Slot {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/** The stand-ins `build` receives, typed as the values they stand for. */
export type Slots<A> = { readonly [K in keyof A]: A[K] };

/** What runs a compiled statement: the database or a transaction on it. */
type Runner = Pick<Kysely<any>, 'executeQuery'>;

/**
 * A statement that kysely builds and compiles once, then runs with each call's arguments: for
 * the hottest statements, whose building and compiling cost more than running them. `build`
 * gets a stand-in for each argument and may put it only where kysely takes a value (a
 * comparison, a SET, an inserted value, `eb.val`), never into JavaScript logic, `sql.lit` or
 * an `in` list: the statement's text must not depend on the arguments, only its parameters. A
 * stand-in that does not reach the parameters is an error at the first run. Anything else
 * `build` reads is fixed at that first compile. `build` may return a query builder or raw SQL
 * (`sql\`…\``, whose stand-ins go where its interpolated values go).
 */
export function compiledOnce<A extends object, R>(names: readonly (keyof A & string)[], build: (db: Kysely<Database>, args: Slots<A>) => Compilable<R> | RawBuilder<R>) {
  let compiled: { sql: string; parameters: readonly unknown[] } | undefined;
  const compile = () => {
    const slots = Object.fromEntries(names.map((name) => [name, new Slot(name)])) as unknown as Slots<A>;
    const built = build(builder, slots);
    const query = 'isRawBuilder' in built ? built.compile(builder) : built.compile();
    const used = new Set(query.parameters.filter((p): p is Slot => p instanceof Slot).map((p) => p.name));
    const lost = names.filter((name) => !used.has(name));
    if (lost.length > 0) throw new Error(`compiledOnce: ${lost.join(', ')} did not reach the statement's parameters`);
    return { sql: query.sql, parameters: query.parameters };
  };
  return async (db: Runner, args: A): Promise<QueryResult<R>> => {
    compiled ??= compile();
    const values = new Map<string, unknown>(Object.entries(args));
    const parameters = compiled.parameters.map((p) => (p instanceof Slot ? values.get(p.name) : p));
    return db.executeQuery(CompiledQuery.raw(compiled.sql, parameters) as CompiledQuery<R>);
  };
}

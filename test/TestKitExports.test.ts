/**
 * The test kit as a store author gets it: imported by this package's own name, which Node
 * resolves through `package.json` `exports` to the built `dist/` (see `test/globalSetup.ts`).
 */
import * as MemoryStore from "effect-session/SessionStore/Memory"
import { storeConformance } from "effect-session/testing"
import * as Effect from "effect/Effect"

storeConformance({
  name: "memory, through the package exports",
  layer: MemoryStore.layer({ cleanupInterval: "1 minute" }),
  enumerable: true,
  owners: true,
  sweep: { interval: "1 minute", physicalCount: () => Effect.flatMap(MemoryStore.MemoryStore, (store) => store.size) }
})

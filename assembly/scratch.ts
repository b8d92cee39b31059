// Every kernel's working space, in one block that each module instance can move.
//
// Kernels keep small scratch buffers (a packed B group, a ragged tile, a row of
// attention scores). A single-threaded module uses the static block below. When
// several threads run instances of the module over one shared memory, each
// instance calls useScratch with a block of its own from the heap, so no two
// threads ever write the same scratch. The pointers are per-instance globals.

/** GEMM: NB·KC·NR floats of packed B (gemm.ts checks its constants fit). */
export const PACKED_B_BYTES: usize = 4 * 512 * 8 * 4;
/** GEMM: MR·KC floats, the last ragged rows of an A block. */
export const A_TAIL_BYTES: usize = 4 * 512 * 4;
/** GEMM: one MR×NR register tile for ragged edges. */
export const EDGE_TILE_BYTES: usize = 4 * 8 * 4;
/** Attention: two rows of scores, one chunk each (attention.ts CHUNK floats), for a pair of queries. */
export const SCORE_ROW_BYTES: usize = 2 * 4096 * 4;
/** Activations: one v128 for ragged tails. */
export const LANES_BYTES: usize = 16;

const TOTAL: usize = PACKED_B_BYTES + A_TAIL_BYTES + EDGE_TILE_BYTES + SCORE_ROW_BYTES + LANES_BYTES;
const STATIC_BLOCK: usize = memory.data(<i32>TOTAL, 64);

export let packedB: usize = 0;
export let aTail: usize = 0;
export let edgeTile: usize = 0;
export let scoreRow: usize = 0;
export let lanes: usize = 0;

useScratch(STATIC_BLOCK);

/** Bytes of scratch one instance needs (a block for useScratch must hold this many, 64-byte aligned). */
export function scratchBytes(): usize {
  return TOTAL;
}

/** Points this instance's kernels at a scratch block of scratchBytes() bytes at `base` (64-byte aligned). */
export function useScratch(base: usize): void {
  packedB = base;
  aTail = packedB + PACKED_B_BYTES;
  edgeTile = aTail + A_TAIL_BYTES;
  scoreRow = edgeTile + EDGE_TILE_BYTES;
  lanes = scoreRow + SCORE_ROW_BYTES;
}

/**
 * The one object thrown for an architectural fault (#GP, #PF, ...). The
 * vector and error code are on the CPU (excVector / excError); the run
 * loop catches this sentinel once per fault and delivers the exception.
 * Preallocated, so raising a fault allocates nothing.
 */
export const FAULT: { readonly fault: true } = Object.freeze({ fault: true })

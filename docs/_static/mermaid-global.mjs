// Mermaid as an ES module, for sphinxcontrib-mermaid's `import mermaid from ...`:
// the page loads the shipped mermaid.min.js (a classic script) first, which defines
// the global `mermaid`.
export default globalThis.mermaid;

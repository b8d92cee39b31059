// Cloudflare Workers (workerd) and their bundlers turn a .wasm import into a compiled module.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}

/** esbuild's file loader: an imported file is its public URL. */
declare module '*.svg' {
  const url: string;
  export default url;
}

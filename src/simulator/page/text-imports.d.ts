// The chat page's files, imported as text by page.ts (`with { type: "text" }`). Named one by one,
// so that no other import of a .html, .css or .js file is typed as a string by accident.
declare module "*/chat.html" {
  const text: string;
  export default text;
}
declare module "*/chat.css" {
  const text: string;
  export default text;
}
declare module "*/chat.js" {
  const text: string;
  export default text;
}

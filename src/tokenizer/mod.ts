/**
 * Tokenizers: encode/decode with Hugging Face tokenizer files, chat
 * templates, and streaming detokenization.
 *
 * @module
 */
export { type ChatMessage, TextTokenizer } from "./tokenizer.ts";
export { ChatTemplate, selectChatTemplate } from "./chat_template.ts";
export { StreamDecoder } from "./stream.ts";

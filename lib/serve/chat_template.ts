/**
 * The chat template of a model folder (tokenizer_config.json's `chat_template`, as transformers'
 * apply_chat_template reads it), rendered by @huggingface/jinja, the Jinja implementation
 * Hugging Face maintains for transformers.js.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { ExciseError } from '../errors.js';
import { readRegularFile } from '../files.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplate {
  /** The prompt text for `messages`, ending with the assistant's turn opened. */
  render(messages: readonly ChatMessage[]): string;
}

const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** A special token as tokenizer_config.json writes it: a string or { content }. */
function tokenText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return '';
}

/**
 * The folder's chat template, or undefined when it has none (no tokenizer_config.json, or one
 * without chat_template; chat_template.jinja next to it also counts, as in transformers 4.43+).
 * A template that does not parse is ERR_CONFIG_INVALID.
 */
export function loadChatTemplate(dir: string | undefined): ChatTemplate | undefined {
  if (!dir) return undefined;
  const configFile = join(dir, 'tokenizer_config.json');
  let config: Record<string, unknown> = {};
  if (existsSync(configFile)) {
    const text = readRegularFile(configFile, MAX_CONFIG_BYTES, { missing: 'ERR_CONFIG_INVALID', invalid: 'ERR_CONFIG_INVALID' });
    try {
      config = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ExciseError('ERR_CONFIG_INVALID', `${configFile}: not valid JSON (${(err as Error).message})`);
    }
  }
  let source: unknown = config.chat_template;
  if (Array.isArray(source)) {
    // Named templates: [{ name, template }]; the one named "default" is the chat template.
    source = (source.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined)?.template;
  }
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (typeof source !== 'string' && existsSync(jinjaFile)) source = readRegularFile(jinjaFile, MAX_CONFIG_BYTES, { missing: 'ERR_CONFIG_INVALID', invalid: 'ERR_CONFIG_INVALID' });
  if (typeof source !== 'string' || source.length === 0) return undefined;
  let template: Template;
  try {
    template = new Template(source);
  } catch (err) {
    throw new ExciseError('ERR_CONFIG_INVALID', `${configFile}: chat_template does not parse (${(err as Error).message})`);
  }
  const specials = { bos_token: tokenText(config.bos_token), eos_token: tokenText(config.eos_token), unk_token: tokenText(config.unk_token), pad_token: tokenText(config.pad_token) };
  return {
    render(messages) {
      try {
        return template.render({ messages, add_generation_prompt: true, ...specials });
      } catch (err) {
        // A template may refuse a conversation (e.g. roles out of order) with raise_exception().
        throw new ExciseError('ERR_INVALID_ARGUMENT', `chat template: ${(err as Error).message}`);
      }
    },
  };
}

// Responses API clients against the proxy: openai-node's responses.stream and the AI SDK's openai.responses().
//
// Usage: node responses.mjs <scenario data as JSON>, then one JSON line per scenario on stdin,
// {"baseURL": ..., "scenario": ...}; each answer is one JSON line on stdout ({"failure": ...} when the scenario
// threw). One process serves a whole test module, so Node starts once.
import { createInterface } from 'node:readline';

import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';

import { describeError, weather } from './common.mjs';

const API_KEY = 'client-key';
// stdout carries the answers only: the AI SDK announces its warnings with console.info.
console.info = console.error;

function aiModel(baseURL, data) {
  return createOpenAI({ baseURL, apiKey: API_KEY }).responses(data.model);
}

// Ask for the reasoning summary, as a chat app showing the model's thinking does.
const REASONING = { openai: { reasoningSummary: 'auto' } };

const scenarios = {
  async 'openai-stream'(baseURL, data) {
    const client = new OpenAI({ baseURL, apiKey: API_KEY, maxRetries: 0, timeout: 30_000 });
    const stream = client.responses.stream({ model: data.model, input: data.question, reasoning: { summary: 'auto' } });
    let deltas = '';
    let reasoning = '';
    const sequence = [];
    stream.on('event', (event) => sequence.push(event.sequence_number));
    stream.on('response.output_text.delta', (event) => { deltas += event.delta; });
    stream.on('response.reasoning_summary_text.delta', (event) => { reasoning += event.delta; });
    const final = await stream.finalResponse();
    return { deltas, reasoning, sequence, status: final.status, output_text: final.output_text, usage: final.usage };
  },

  async 'ai-generate'(baseURL, data) {
    const result = await generateText({
      model: aiModel(baseURL, data), prompt: data.question, providerOptions: REASONING,
    });
    return { text: result.text, reasoning: result.reasoningText ?? null, finishReason: result.finishReason,
      usage: result.usage, warnings: result.warnings };
  },

  async 'ai-stream-tools'(baseURL, data) {
    const result = streamText({
      model: aiModel(baseURL, data),
      prompt: data.tool_question,
      stopWhen: stepCountIs(2),
      tools: {
        [data.tool.name]: tool({
          description: data.tool.description,
          inputSchema: jsonSchema(data.tool.parameters),
          execute: async ({ city }) => weather(data, city),
        }),
      },
    });
    const out = { text: '', toolCalls: [], toolResults: [], errors: [], finishReason: null };
    for await (const part of result.fullStream) {
      if (part.type === 'text-delta') out.text += part.text;
      else if (part.type === 'tool-call') {
        out.toolCalls.push({ id: part.toolCallId, name: part.toolName, input: part.input });
      }
      else if (part.type === 'tool-result') out.toolResults.push({ id: part.toolCallId, output: part.output });
      else if (part.type === 'error') out.errors.push(describeError(part.error));
      else if (part.type === 'finish') out.finishReason = part.finishReason;
    }
    if (out.errors.length) throw new Error(JSON.stringify(out.errors));
    return out;
  },
};

const data = JSON.parse(process.argv[2]);
for await (const line of createInterface({ input: process.stdin })) {
  const { baseURL, scenario } = JSON.parse(line);
  let answer;
  try {
    answer = await scenarios[scenario](baseURL, data);
  } catch (error) {
    answer = { failure: `${scenario}: ${describeError(error).message}\n${error?.stack ?? ''}` };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}

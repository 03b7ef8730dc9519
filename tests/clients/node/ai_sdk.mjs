// The Vercel AI SDK with @ai-sdk/openai-compatible (the provider Cherry Studio builds on) against the proxy.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';

import { describeError, main, weather } from './common.mjs';

function model(baseURL, data) {
  const provider = createOpenAICompatible({ name: 'proxy', baseURL, apiKey: 'client-key', includeUsage: true });
  return provider(data.model);
}

function weatherTool(data) {
  return {
    [data.tool.function.name]: tool({
      description: data.tool.function.description,
      inputSchema: jsonSchema(data.tool.function.parameters),
      execute: async ({ city }) => weather(data, city),
    }),
  };
}

// Consecutive reasoning and text deltas folded into runs, so the test sees what went where and in what order.
function addRun(runs, kind, text) {
  const last = runs.at(-1);
  if (last?.kind === kind) last.text += text;
  else runs.push({ kind, text });
}

async function collectStream(result) {
  const out = { runs: [], toolCalls: [], toolResults: [], errors: [], finishReason: null, usage: null };
  for await (const part of result.fullStream) {
    if (part.type === 'reasoning-delta') addRun(out.runs, 'reasoning', part.text);
    else if (part.type === 'text-delta') addRun(out.runs, 'text', part.text);
    else if (part.type === 'tool-call') out.toolCalls.push({ id: part.toolCallId, name: part.toolName, input: part.input });
    else if (part.type === 'tool-result') out.toolResults.push({ id: part.toolCallId, output: part.output });
    else if (part.type === 'error') out.errors.push(describeError(part.error));
    else if (part.type === 'finish') {
      out.finishReason = part.finishReason;
      out.usage = part.totalUsage;
    }
  }
  return out;
}

function describeSteps(steps) {
  return steps.map((step) => ({
    finishReason: step.finishReason,
    text: step.text,
    reasoning: step.reasoningText ?? null,
    toolCalls: step.toolCalls.map((call) => ({ id: call.toolCallId, name: call.toolName, input: call.input })),
    toolResults: step.toolResults.map((result) => ({ id: result.toolCallId, output: result.output })),
  }));
}

const scenarios = {
  async generate(baseURL, data) {
    const result = await generateText({ model: model(baseURL, data), prompt: data.question });
    return {
      text: result.text,
      reasoning: result.reasoningText ?? null,
      contentTypes: result.content.map((part) => part.type),
      finishReason: result.finishReason,
      usage: result.usage,
    };
  },

  async stream(baseURL, data) {
    return collectStream(streamText({ model: model(baseURL, data), prompt: data.question }));
  },

  async 'generate-tools'(baseURL, data) {
    const result = await generateText({
      model: model(baseURL, data), prompt: data.tool_question, tools: weatherTool(data), stopWhen: stepCountIs(2),
    });
    return { text: result.text, steps: describeSteps(result.steps) };
  },

  async 'stream-tools'(baseURL, data) {
    const result = streamText({
      model: model(baseURL, data), prompt: data.tool_question, tools: weatherTool(data), stopWhen: stepCountIs(2),
    });
    const streamed = await collectStream(result);
    return { ...streamed, steps: describeSteps(await result.steps) };
  },

  async error(baseURL, data) {
    const reported = [];
    const result = streamText({
      model: model(baseURL, data),
      prompt: data.question,
      onError: ({ error }) => { reported.push(describeError(error)); },
    });
    return { ...(await collectStream(result)), reported };
  },
};

await main(scenarios);

// The official openai Node SDK against the proxy: create, streaming, the stream helper, runTools, parse.
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

import { describeError, main, weather } from './common.mjs';

function client(baseURL) {
  return new OpenAI({ baseURL, apiKey: 'client-key', maxRetries: 0, timeout: 30_000 });
}

function ask(data) {
  return [{ role: 'user', content: data.question }];
}

// What a chat app keeps from streamed chunks.
async function collect(stream) {
  const out = { content: '', reasoning: '', mixed: 0, finish_reasons: [], usage: null, roles: [] };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      const { content, reasoning_content: reasoning, role } = choice.delta;
      if (role) out.roles.push(role);
      if (content && reasoning) out.mixed += 1;
      out.content += content ?? '';
      out.reasoning += reasoning ?? '';
      if (choice.finish_reason) out.finish_reasons.push(choice.finish_reason);
    }
  }
  return out;
}

async function failure(run) {
  try {
    await run();
  } catch (error) {
    return describeError(error);
  }
  return null;
}

const scenarios = {
  async plain(baseURL, data) {
    const completion = await client(baseURL).chat.completions.create({ model: data.model, messages: ask(data) });
    const [choice] = completion.choices;
    return {
      content: choice.message.content,
      reasoning: choice.message.reasoning_content ?? null,
      finish_reason: choice.finish_reason,
      usage: completion.usage,
    };
  },

  async stream(baseURL, data) {
    const stream = await client(baseURL).chat.completions.create({
      model: data.model, messages: ask(data), stream: true, stream_options: { include_usage: true },
    });
    return collect(stream);
  },

  async 'stream-helper'(baseURL, data) {
    const stream = client(baseURL).chat.completions.stream({
      model: data.model, messages: ask(data), stream_options: { include_usage: true },
    });
    let deltas = '';
    stream.on('content.delta', ({ delta }) => { deltas += delta; });
    const final = await stream.finalChatCompletion();
    return {
      deltas,
      content: final.choices[0].message.content,
      finish_reason: final.choices[0].finish_reason,
      usage: final.usage,
    };
  },

  // runTools streams the call, runs the tool, sends its result and streams the answer.
  async tools(baseURL, data) {
    const runner = client(baseURL).chat.completions.runTools({
      model: data.model,
      messages: [{ role: 'user', content: data.tool_question }],
      stream: true,
      tools: [{
        type: 'function',
        function: {
          ...data.tool.function,
          parse: JSON.parse,
          function: (args) => weather(data, args.city),
        },
      }],
    });
    const content = await runner.finalContent();
    const calls = runner.messages
      .filter((message) => message.role === 'assistant' && message.tool_calls?.length)
      .flatMap((message) => message.tool_calls)
      .map((call) => ({ id: call.id, name: call.function.name, arguments: JSON.parse(call.function.arguments) }));
    const results = runner.messages.filter((message) => message.role === 'tool')
      .map((message) => ({ tool_call_id: message.tool_call_id, content: JSON.parse(message.content) }));
    return { content, calls, results };
  },

  async error(baseURL, data) {
    const seen = { content: '', reasoning: '', finish_reasons: [] };
    const stream = await failure(async () => {
      const chunks = await client(baseURL).chat.completions.create({
        model: data.model, messages: ask(data), stream: true,
      });
      for await (const chunk of chunks) {
        const [choice] = chunk.choices;
        seen.content += choice?.delta.content ?? '';
        seen.reasoning += choice?.delta.reasoning_content ?? '';
        if (choice?.finish_reason) seen.finish_reasons.push(choice.finish_reason);
      }
    });
    const helper = await failure(() => client(baseURL).chat.completions.stream({
      model: data.model, messages: ask(data),
    }).finalChatCompletion());
    return { stream, seen, helper };
  },

  async parse(baseURL, data) {
    const Forecast = z.object({ city: z.string(), sky: z.string(), temp_c: z.number().int() });
    const completion = await client(baseURL).chat.completions.parse({
      model: data.model, messages: ask(data), response_format: zodResponseFormat(Forecast, 'Forecast'),
    });
    return { parsed: completion.choices[0].message.parsed };
  },
};

await main(scenarios);

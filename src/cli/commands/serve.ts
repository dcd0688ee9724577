// `fewshot serve`: a trained model as a local HTTP prediction service until Ctrl+C or SIGTERM.

import { ttaLabel } from '../../shared/tta.ts';
import path from 'node:path';
import { DEFAULT_SERVE_PORT, isLoopback, startPredictionService } from '../../main/services/serve/server.ts';
import type { Command } from '../context.ts';
import { deviceOption, intOption, need, requiredOption, stringOption, ttaOption } from '../options.ts';

const USAGE =
  'serve FILE --model ID [--port N] [--host ADDR] [--token-file PATH] [--device auto|cpu|gpu] [--tta none|flip|flip+crops]';

/** Resolves with what stopped the service: Ctrl+C (the command's cancel signal) or SIGTERM. */
function untilStopped(signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve) => {
    const finish = (reason: string): void => {
      process.off('SIGTERM', onTerm);
      signal?.removeEventListener('abort', onInterrupt);
      resolve(reason);
    };
    const onTerm = (): void => finish('SIGTERM');
    const onInterrupt = (): void => finish('SIGINT');
    process.on('SIGTERM', onTerm);
    if (signal?.aborted) finish('SIGINT');
    else signal?.addEventListener('abort', onInterrupt, { once: true });
  });
}

const serve: Command = async (args, ctx) => {
  const [file] = need(args, 1, USAGE) as [string];
  const modelId = requiredOption(ctx, 'model', 'see fewshot trained');
  const port = intOption(ctx, 'port', DEFAULT_SERVE_PORT, true);
  const host = stringOption(ctx, 'host');
  const tokenFile = stringOption(ctx, 'token-file');
  const device = deviceOption(ctx);
  const tta = ttaOption(ctx);
  // The project is read without a write lock: training or an import may go on while it serves.
  const service = await startPredictionService(file, {
    modelId,
    port,
    ...(host ? { host } : {}),
    ...(tokenFile ? { tokenFile: path.resolve(tokenFile) } : {}),
    ...(device ? { device } : {}),
    ...(tta ? { tta } : {}),
    // The request log goes to stderr: method, route, status, duration.
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const m = service.model;
  if (!isLoopback(service.host))
    process.stderr.write(
      `warning: listening on ${service.host}: other machines that can reach this address can send requests (each still needs the token).\n`,
    );
  if (ctx.json)
    process.stdout.write(
      `${JSON.stringify({ url: service.url, token: service.token, tokenFile: service.tokenFile, modelId: m.id })}\n`,
    );
  ctx.log(`Serving model ${m.id} (${m.strategy} on ${m.backbone.id}; ${m.classes.join(', ')})`);
  if (m.tta) ctx.log(`views: ${ttaLabel(m.tta.kind)}; temperature from ${m.tta.temperatureFrom}`);
  ctx.log(`listening: ${service.url}`);
  ctx.log(`token: ${service.token}`);
  ctx.log(`token file: ${service.tokenFile} (readable only by you; removed when the service stops)`);
  ctx.log(
    `  curl -H "Authorization: Bearer $(cat ${service.tokenFile})" --data-binary @image.jpg ${service.url}/v1/predict`,
  );
  ctx.log('Press Ctrl+C to stop.');
  const reason = await untilStopped(ctx.run.signal);
  const stats = await service.close(reason);
  ctx.log(`Stopped (${reason}): ${stats.requests} requests answered, ${stats.failed} with an error.`);
  return { url: service.url, modelId: m.id, reason, ...stats };
};

export const SERVE_COMMANDS: Record<string, Command> = { serve };

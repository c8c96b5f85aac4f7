using PrefPipe.Host.Commands;

// prefpipe: the CLI and hosted service. Exit codes: 0 success, 1 a check or stage failed, 2 bad usage or input.
return await Cli.InvokeAsync(args).ConfigureAwait(false);

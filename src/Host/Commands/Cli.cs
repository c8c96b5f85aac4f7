using System.CommandLine;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary>Builds the prefpipe command tree.</summary>
internal static class Cli
{
    /// <summary>The process exit codes prefpipe uses (README, "Exit codes"); <see cref="CliErrors"/> maps exceptions to them.</summary>
    internal static class ExitCodes
    {
        /// <summary>Success.</summary>
        public const int Ok = 0;

        /// <summary>A run, stage or check failed (storage, network, training), or the command was cancelled.</summary>
        public const int Failed = 1;

        /// <summary>Bad usage or input: options, pipeline file, data or model files.</summary>
        public const int Usage = 2;

        /// <summary>An unexpected error: a bug in prefpipe.</summary>
        public const int Bug = 3;
    }

    /// <summary><c>--verbose</c>: stack traces for unexpected errors.</summary>
    private static readonly Option<bool> VerboseOption = new("--verbose") { Description = "Print the stack trace of an unexpected error.", Recursive = true };

    public static RootCommand Build(IAnsiConsole? console = null)
    {
        var root = new RootCommand(
            "prefpipe builds preference datasets and aligns language models with them: ingest prompts and generate " +
            "candidates, rank them with a reward model, split pairs into easy and difficult, then train DPO-family " +
            "objectives and PPO (Mixed Preference Optimization).");
        root.Subcommands.Add(DoctorCommand.Create(console));
        root.Subcommands.Add(TokenizeCommand.Create(console));
        root.Subcommands.Add(TemplateCommand.Create(console));
        root.Subcommands.Add(RewardCommand.Create(console));
        root.Subcommands.Add(ModelCommand.Create(console));
        foreach (var command in RunCommands.Create(console)) root.Subcommands.Add(command);
        foreach (var command in StageCommands.Create(console)) root.Subcommands.Add(command);
        root.Subcommands.Add(TrainCommand.Create(console));
        root.Subcommands.Add(CompareCommand.Create(console));
        root.Subcommands.Add(StudyCommand.Create(console));
        root.Subcommands.Add(InspectCommand.Create(console));
        root.Subcommands.Add(WorkerCommand.Create(console));
        root.Subcommands.Add(ServeCommand.Create(console));
        root.Subcommands.Add(BenchCommand.Create(console));
        root.Subcommands.Add(PlanCommand.Create(console));
        root.Options.Add(VerboseOption);
        return root;
    }

    public static async Task<int> InvokeAsync(string[] args, IAnsiConsole? console = null, CancellationToken cancellationToken = default)
    {
        var parse = Build(console).Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors) Console.Error.WriteLine($"prefpipe: {error.Message}");
            Console.Error.WriteLine("Run 'prefpipe --help' for usage.");
            return ExitCodes.Usage;
        }
        CliErrors.Verbose = parse.GetValue(VerboseOption);
        try
        {
            return await parse.InvokeAsync(Invocation, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Whatever a command's own handling let through: the same mapping, never a bare stack trace.
            var path = new List<string>();
            for (var r = parse.CommandResult; r.Parent is System.CommandLine.Parsing.CommandResult parent; r = parent) path.Insert(0, r.Command.Name);
            return CliErrors.Report(string.Join(' ', path), e);
        }
    }

    /// <summary>
    /// How long a Ctrl+C/SIGTERM leaves the command before the process is ended. System.CommandLine's default is 2 s,
    /// which ended <c>serve</c> (exit 143) while the host was still stopping its runs (HostOptions.ShutdownTimeout, 25 s)
    /// and left run.json "running"; this waits longer than that. The signal still cancels the command's token at once.
    /// </summary>
    internal static readonly TimeSpan ProcessTerminationTimeout = TimeSpan.FromSeconds(30);

    private static InvocationConfiguration Invocation => new() { ProcessTerminationTimeout = ProcessTerminationTimeout, EnableDefaultExceptionHandler = false };
}

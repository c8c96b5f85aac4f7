using System.CommandLine;
using System.Text.Json;
using PrefPipe.Host.Diagnostics;
using Spectre.Console;

namespace PrefPipe.Host.Commands;

/// <summary><c>prefpipe doctor</c>: what a user needs to know before a run.</summary>
internal static class DoctorCommand
{
    public static Command Create(IAnsiConsole? console)
    {
        var storage = new Option<string?>("--storage")
        {
            Description = "Artifact store to check: a local folder, az://container/prefix or a blob endpoint URL. " +
                          $"Default: ${DoctorChecks.StorageVariable}, else ./runs.",
        };
        var requireCuda = new Option<bool>("--require-cuda") { Description = "Fail unless libtorch sees a CUDA device." };
        var json = new Option<bool>("--json") { Description = "Print the checks as JSON instead of a table." };
        var command = new Command("doctor", "Check this machine: .NET, TorchSharp/libtorch (CPU/CUDA), ONNX Runtime providers, storage.")
        {
            storage, requireCuda, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var checks = await DoctorChecks.RunAsync(
                parse.GetValue(storage) ?? Environment.GetEnvironmentVariable(DoctorChecks.StorageVariable) ?? "./runs",
                parse.GetValue(requireCuda), cancellationToken).ConfigureAwait(false);
            var output = console ?? AnsiConsole.Console;
            if (parse.GetValue(json))
                output.WriteLine(JsonSerializer.Serialize(checks, DoctorJson.Default.IReadOnlyListDoctorCheck));
            else
                Render(output, checks);
            return checks.Any(c => c.Status == CheckStatus.Fail) ? Cli.ExitCodes.Failed : Cli.ExitCodes.Ok;
        });
        return command;
    }

    private static void Render(IAnsiConsole console, IReadOnlyList<DoctorCheck> checks)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]prefpipe doctor[/]");
        table.AddColumn("Check");
        table.AddColumn("Status");
        table.AddColumn("Detail");
        foreach (var c in checks)
        {
            string status = c.Status switch
            {
                CheckStatus.Ok => "[green]ok[/]",
                CheckStatus.Info => "[grey]info[/]",
                CheckStatus.Warn => "[yellow]warn[/]",
                _ => "[red]FAIL[/]",
            };
            table.AddRow(Markup.Escape(c.Name), status, Markup.Escape(c.Detail));
        }
        console.Write(table);
        var failed = checks.Where(c => c.Status == CheckStatus.Fail).ToList();
        if (failed.Count == 0)
        {
            console.MarkupLine("[green]Ready.[/]");
            return;
        }
        foreach (var f in failed)
            console.MarkupLine($"[red]{Markup.Escape(f.Name)}:[/] {Markup.Escape(f.Fix ?? f.Detail)}");
    }
}

using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Microsoft.Extensions.Options;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;
using YamlDotNet.Core;

namespace PrefPipe.Host.Commands;

/// <summary>
/// The one mapping from an exception to what a user sees: a one-line message and an exit code. Every command reports
/// its errors through it (its own wrapper, or <see cref="Cli.InvokeAsync"/> for whatever escapes one).
/// </summary>
/// <remarks>
/// Expected failures (bad input, storage or network trouble, a failed stage) print their message only. Anything else is
/// a bug: the message, a line saying so, and the stack trace only with <c>--verbose</c> or <c>PREFPIPE_VERBOSE=1</c>.
/// </remarks>
internal static class CliErrors
{
    /// <summary>Set by <c>--verbose</c>; <c>PREFPIPE_VERBOSE=1</c> also turns stack traces on.</summary>
    internal static bool Verbose { get; set; }

    private static bool ShowStackTraces => Verbose || Environment.GetEnvironmentVariable("PREFPIPE_VERBOSE") is "1" or "true";

    /// <summary>The exit code for <paramref name="e"/> (see <see cref="Cli.ExitCodes"/>).</summary>
    public static int ExitCodeOf(Exception e) => Unwrap(e) switch
    {
        OperationCanceledException => Cli.ExitCodes.Failed,
        PipelineFileException or ArgumentException or ValidationException or OptionsValidationException or FileNotFoundException or DirectoryNotFoundException
            or InvalidDataException or FormatException or NotSupportedException or UnauthorizedAccessException or YamlException or JsonException
            or PrefPipe.Text.Templates.TemplateException
            => Cli.ExitCodes.Usage,
        IOException or InvalidOperationException or TimeoutException or HttpRequestException or Azure.RequestFailedException
            or Polly.CircuitBreaker.BrokenCircuitException or Polly.Timeout.TimeoutRejectedException
            => Cli.ExitCodes.Failed,
        _ => Cli.ExitCodes.Bug,
    };

    /// <summary>Whether <paramref name="e"/> is a failure a user can act on (not a bug in prefpipe).</summary>
    public static bool IsExpected(Exception e) => ExitCodeOf(e) != Cli.ExitCodes.Bug;

    /// <summary>The one-line message for <paramref name="e"/>: no parameter names, no stack trace.</summary>
    public static string MessageOf(Exception e)
    {
        e = Unwrap(e);
        string message = e switch
        {
            // ArgumentException appends " (Parameter 'name')": the name of a C# parameter means nothing to a user.
            ArgumentException a when a.ParamName is { } p => a.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal),
            IOException io when IsDiskFull(io) => $"the disk is full: {e.Message}",
            UnauthorizedAccessException => $"{e.Message} (permission denied: check the path and who may write there)",
            YamlException y => $"line {y.Start.Line}, column {y.Start.Column}: not valid YAML: {y.InnerException?.Message ?? y.Message}",
            Azure.RequestFailedException { Status: 0 } or HttpRequestException => $"storage or endpoint is unreachable: {e.Message}",
            Polly.CircuitBreaker.BrokenCircuitException => $"storage is unreachable (stopped trying after repeated failures): {e.Message}",
            Polly.Timeout.TimeoutRejectedException => $"storage did not answer in time: {e.Message}",
            OperationCanceledException => "cancelled",
            _ => e.Message,
        };
        // Native errors (libtorch) carry their C++ frames in the message: the first line is the message. Secrets (a
        // connection string in a storage SDK's FormatException, a SAS in a URL) never reach the terminal or a log.
        message = Secrets.Redact(message);
        return ExitCodeOf(e) == Cli.ExitCodes.Bug ? $"{e.GetType().Name}: {message.Split('\n', 2)[0].TrimEnd()}" : message;
    }

    /// <summary>Writes <c>prefpipe COMMAND: message</c> (and, for a bug, what to do) to standard error; returns the exit code.</summary>
    public static int Report(string command, Exception e, TextWriter? error = null)
    {
        error ??= Console.Error;
        string prefix = string.IsNullOrEmpty(command) ? "prefpipe" : $"prefpipe {command}";
        error.WriteLine($"{prefix}: {MessageOf(e)}");
        int code = ExitCodeOf(e);
        if (code == Cli.ExitCodes.Bug)
        {
            error.WriteLine(ShowStackTraces
                ? Secrets.Redact(e.ToString())
                : "this is a bug in prefpipe; rerun with --verbose (or PREFPIPE_VERBOSE=1) for the stack trace and report it");
        }
        return code;
    }

    /// <summary>ENOSPC (errno 28, the HResult .NET gives on Unix) or ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.</summary>
    internal static bool IsDiskFull(IOException e) =>
        OperatingSystem.IsWindows() ? (e.HResult & 0xFFFF) is 0x70 or 0x27 : e.HResult == 28;

    /// <summary>An aggregate of one exception (Task.Wait, Parallel) is that exception; a task's own wrapper likewise.
    /// Options found invalid when a host starts (<c>ValidateOnStart</c>, one exception per options type) are one.</summary>
    private static Exception Unwrap(Exception e)
    {
        while (true)
        {
            if (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
            else if (e is AggregateException many && many.InnerExceptions.All(i => i is OptionsValidationException))
                return new OptionsValidationException(Options.DefaultName, typeof(object),
                    many.InnerExceptions.Cast<OptionsValidationException>().SelectMany(i => i.Failures));
            else if (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) e = inner;
            else return e;
        }
    }
}

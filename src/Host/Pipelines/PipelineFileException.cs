using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Pipelines;

/// <summary>A pipeline file is invalid; <see cref="Exception.Message"/> lists every problem with its key, value and what was
/// expected. Secrets in a problem's text are redacted (<see cref="Secrets.Redact"/>).</summary>
internal sealed class PipelineFileException : Exception
{
    public PipelineFileException(string file, IReadOnlyList<string> problems)
        : this(file, problems.Select(Secrets.Redact).ToList())
    {
    }

    private PipelineFileException(string file, List<string> problems)
        : base($"{file}: {problems.Count} problem(s):\n  - " + string.Join("\n  - ", problems))
    {
        File = file;
        Problems = problems;
    }

    public PipelineFileException() { }

    public PipelineFileException(string message) : base(message) { }

    public PipelineFileException(string message, Exception inner) : base(message, inner) { }

    public string File { get; } = "";

    public IReadOnlyList<string> Problems { get; } = [];
}

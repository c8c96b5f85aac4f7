using System.Runtime.CompilerServices;
using Polly;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// Runs every call of an inner store through a resilience pipeline. Each operation is safe to repeat: commits
/// replace whole files, deletes ignore missing files, reads and listings have no side effects. A listing is fetched
/// whole inside the pipeline, so a retried listing never yields a name twice.
/// </summary>
internal sealed class ResilientArtifactStore(IArtifactStore inner, ResiliencePipeline pipeline) : IArtifactStore
{
    public IArtifactStore Inner { get; } = inner;

    public string Location => Inner.Location;

    public string UriOf(string path) => Inner.UriOf(path);

    public override string ToString() => Inner.Location;

    public ValueTask<bool> ExistsAsync(string path, CancellationToken cancellationToken = default) =>
        pipeline.ExecuteAsync(static (state, ct) => state.Inner.ExistsAsync(state.path, ct), (Inner, path), cancellationToken);

    public ValueTask<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default) =>
        pipeline.ExecuteAsync(static (state, ct) => state.Inner.OpenReadAsync(state.path, ct), (Inner, path), cancellationToken);

    public ValueTask CommitAsync(string path, string localFile, CancellationToken cancellationToken = default) =>
        pipeline.ExecuteAsync(static (state, ct) => state.Inner.CommitAsync(state.path, state.localFile, ct), (Inner, path, localFile), cancellationToken);

    // A retry after a lost response to a successful create reports false (the file now exists): a caller that must
    // know whether it won writes a unique token and reads the marker back.
    public ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default) =>
        pipeline.ExecuteAsync(static (state, ct) => state.Inner.TryCreateAsync(state.path, state.content, ct), (Inner, path, content), cancellationToken);

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var names = await pipeline.ExecuteAsync(static async (state, ct) =>
        {
            var list = new List<string>();
            await foreach (string name in state.Inner.ListAsync(state.prefix, ct).ConfigureAwait(false)) list.Add(name);
            return list;
        }, (Inner, prefix), cancellationToken).ConfigureAwait(false);
        foreach (string name in names) yield return name;
    }

    public ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default) =>
        pipeline.ExecuteAsync(static (state, ct) => state.Inner.DeleteAsync(state.path, ct), (Inner, path), cancellationToken);
}

using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.Lora;
using PrefPipe.Models.Runtime;
using PrefPipe.Models.Scoring;
using PrefPipe.Trainer.Data;
using static TorchSharp.torch;

namespace PrefPipe.Trainer;

/// <summary>
/// The reference model's log-probs for every pair, computed once before training and stored as an artifact keyed by a
/// fingerprint of the data (the exact token ids), the reference model (every byte of its weights, its config and
/// tokenizer files) and the dtype it runs in; training reads them and never runs the reference model per step. A later
/// run with the same fingerprint reuses the artifact.
/// </summary>
internal static class ReferencePass
{
    /// <summary>
    /// Resume state that checkpoints written before <see cref="Checkpoint.StateFolder"/> kept beside the weights: not the
    /// model. (The subfolder itself is never read: only the folder's own files are.)
    /// </summary>
    private static readonly string[] NotWeights = Checkpoint.LegacyStateFiles;

    /// <summary>Tokenizer files besides the *.json ones (SentencePiece, WordPiece and BPE vocabularies, chat template).</summary>
    private static readonly string[] TokenizerFiles = ["tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.txt", "merges.txt", "chat_template.jinja"];

    /// <summary>
    /// SHA-256 over the pairs' token ids, the dtype, and the reference folder's files that decide its log-probs: every
    /// *.json (config, weight index, tokenizer), the tokenizer vocabularies, and each weight file (*.safetensors of the
    /// folder itself; a checkpoint's resume state is in a subfolder) as its length and an XxHash128 of all its bytes, streamed.
    /// </summary>
    public static string Fingerprint(IReadOnlyList<EncodedPair> pairs, string referenceDirectory, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in pairs)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(p.Key));
            foreach (var ids in new[] { p.PromptIds, p.ChosenIds, p.RejectedIds })
            {
                sha.AppendData(BitConverter.GetBytes(ids.Length));
                sha.AppendData(MemoryMarshal.AsBytes(ids.AsSpan()));
            }
        }
        sha.AppendData(Encoding.UTF8.GetBytes($"dtype={dtype}"));
        sha.AppendData(Encoding.UTF8.GetBytes(ModelFingerprint(referenceDirectory)));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>
    /// SHA-256 over a model folder's files that decide its outputs: every *.json (config, weight index, tokenizer), the
    /// tokenizer vocabularies, and each weight file (the folder's own *.safetensors, not a checkpoint's
    /// <see cref="Checkpoint.StateFolder"/>; *.onnx and its external data for reward models) as its length and an XxHash128 of all its bytes, streamed.
    /// </summary>
    /// <remarks>
    /// A training hashes the same folders more than once (the DPO policy is usually its reference; in MPO the PPO policy is
    /// its reference): a folder whose decisive files keep their names, sizes and modification times is read once per
    /// process.
    /// </remarks>
    public static string ModelFingerprint(string directory)
    {
        var files = Directory.EnumerateFiles(directory).Where(Decides).Order(StringComparer.Ordinal).Select(f => new FileInfo(f)).ToList();
        string stamp = Path.GetFullPath(directory) + "|" + string.Join('|', files.Select(f => $"{f.Name}:{f.Length}:{f.LastWriteTimeUtc.Ticks}"));
        string own = Fingerprints.GetOrAdd(stamp, _ => HashModelFiles(files));
        // A LoRA adapter computes what its base does plus the adapter: the base's weights decide its outputs too.
        return AdapterConfig.IsAdapter(directory) ? $"{own}+{ModelFingerprint(AdapterConfig.Read(directory).ResolveBase(directory))}" : own;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Fingerprints = new(StringComparer.Ordinal);

    private static string HashModelFiles(IReadOnlyList<FileInfo> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 22];
        foreach (string file in files.Select(f => f.FullName))
        {
            sha.AppendData(Encoding.UTF8.GetBytes(Path.GetFileName(file)));
            if (!file.EndsWith(".json", StringComparison.Ordinal) && !TokenizerFiles.Contains(Path.GetFileName(file), StringComparer.Ordinal))
            {
                using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
                var xx = new XxHash128();
                int read;
                while ((read = stream.Read(buffer)) > 0) xx.Append(buffer.AsSpan(0, read));
                sha.AppendData(BitConverter.GetBytes(stream.Length));
                sha.AppendData(xx.GetCurrentHash());
            }
            else
            {
                sha.AppendData(File.ReadAllBytes(file));
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static bool Decides(string file)
    {
        string name = Path.GetFileName(file);
        // A checkpoint's trainer_state.json is how it was trained (with wall-clock throughput), not what the model is.
        return (name.EndsWith(".json", StringComparison.Ordinal) && name != "trainer_state.json")
            || (name.EndsWith(".safetensors", StringComparison.Ordinal) && !NotWeights.Contains(name, StringComparer.Ordinal))
            || name.EndsWith(".onnx", StringComparison.Ordinal) || name.EndsWith(".onnx.data", StringComparison.Ordinal) // reward models
            || TokenizerFiles.Contains(name, StringComparer.Ordinal);
    }

    /// <summary>Reads the stored reference log-probs for these pairs, or computes and stores them.</summary>
    /// <param name="store">Where the artifact lives.</param>
    /// <param name="prefix">Folder of the artifact in the store.</param>
    /// <param name="pairs">The encoded pairs.</param>
    /// <param name="referenceDirectory">The reference model folder.</param>
    /// <param name="batchSize">Pairs per forward pass.</param>
    /// <param name="dtype">The training dtype (<see cref="DpoTrainingOptions.Dtype"/>: auto, float32, bfloat16): the reference
    /// runs in the dtype the policy trains in, so both sides of the log-ratio are computed alike.</param>
    /// <param name="progress">Pairs done of total.</param>
    /// <param name="cancellationToken">Checked per batch.</param>
    /// <returns>Rows by pair key, and whether they were reused.</returns>
    public static async Task<(IReadOnlyDictionary<string, ReferenceLogProbRow> Rows, bool Reused, string Path)> ComputeOrReuseAsync(
        IArtifactStore store, string prefix, IReadOnlyList<EncodedPair> pairs, string referenceDirectory, int batchSize, TrainingDtype dtype,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(pairs);
        var device = TorchRuntime.DefaultDevice();
        ScalarType scalarType = TrainingDtypes.Resolve(dtype, device);
        string fingerprint = Fingerprint(pairs, referenceDirectory, scalarType);
        string path = Stages.StagePaths.Join(prefix, $"reference_logps-{fingerprint[..16]}.parquet");
        if (await store.ExistsAsync(path, cancellationToken).ConfigureAwait(false))
        {
            var stored = await ParquetArtifacts.ReadAllAsync<ReferenceLogProbRow>(store, path, cancellationToken).ConfigureAwait(false);
            var storedKeys = stored.Select(r => r.PromptId).ToHashSet(StringComparer.Ordinal);
            if (stored.Count == pairs.Count && pairs.All(p => storedKeys.Contains(p.Key)))
                return (stored.ToDictionary(r => r.PromptId, StringComparer.Ordinal), true, path);
        }
        var rows = new List<ReferenceLogProbRow>(pairs.Count);
        using (var model = AdapterModels.Load(referenceDirectory, device, scalarType))
        {
            int pad = model.Config.PadTokenId ?? (model.Config.EosTokenIds.Count > 0 ? model.Config.EosTokenIds[0] : 0);
            double logVocab = Math.Log(model.Config.VocabSize);
            using var _ = no_grad();
            progress?.Report((0, pairs.Count));
            for (int start = 0; start < pairs.Count; start += batchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var chunk = pairs.Skip(start).Take(batchSize).ToList();
                using var scope = NewDisposeScope();
                var items = chunk.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.ChosenIds))
                    .Concat(chunk.Select(p => ((IReadOnlyList<int>)p.PromptIds, (IReadOnlyList<int>)p.RejectedIds))).ToList();
                using var batch = CompletionBatch.Build(items, pad, model.Device);
                var scores = CompletionScorer.Score(model, batch, withEntropy: true);
                var sums = scores.LogprobSum.cpu().data<float>().ToArray();
                var counts = scores.TokenCount.cpu().data<float>().ToArray();
                var entropy = scores.EntropySum!.cpu().data<float>().ToArray();
                int n = chunk.Count;
                for (int i = 0; i < n; i++)
                {
                    double hw = entropy[i] / (Math.Max(1, counts[i]) * logVocab);
                    double hl = entropy[n + i] / (Math.Max(1, counts[n + i]) * logVocab);
                    rows.Add(new ReferenceLogProbRow
                    {
                        PromptId = chunk[i].Key,
                        ChosenLogps = sums[i],
                        RejectedLogps = sums[n + i],
                        ChosenTokens = (int)counts[i],
                        RejectedTokens = (int)counts[n + i],
                        Dispersion = (hw + hl) / 2,
                    });
                }
                progress?.Report((Math.Min(start + batchSize, pairs.Count), pairs.Count));
            }
        }
        // The model by its folder name and content fingerprint, not its path: an artifact names no host's folders.
        var metadata = new Dictionary<string, string>
        {
            ["fingerprint"] = fingerprint,
            ["reference_model"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(referenceDirectory))),
            ["reference_model_fingerprint"] = ModelFingerprint(referenceDirectory),
            ["dtype"] = scalarType.ToString(),
        };
        await ParquetArtifacts.WriteAsync(store, path, rows, metadata, cancellationToken).ConfigureAwait(false);
        return (rows.ToDictionary(r => r.PromptId, StringComparer.Ordinal), false, path);
    }
}

using System.Text.Json;
using static TorchSharp.torch;

namespace PrefPipe.Models.SafeTensors;

/// <summary>The weights of a model folder: model.safetensors, or shards listed in model.safetensors.index.json.</summary>
public sealed class ModelWeights : IDisposable
{
    /// <summary>Pickled checkpoint names: named in the error, never loaded.</summary>
    private static readonly string[] PickledCheckpoints = ["pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth"];

    private readonly Dictionary<string, SafeTensorsFile> _byTensor;
    private readonly List<SafeTensorsFile> _files;

    private ModelWeights(List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> byTensor)
    {
        _files = files;
        _byTensor = byTensor;
    }

    /// <summary>All tensor names.</summary>
    public IReadOnlyCollection<string> Names => _byTensor.Keys;

    /// <summary>Opens the weights of a Hugging Face model folder.</summary>
    /// <exception cref="FileNotFoundException">No safetensors weights (pickled ones are named and refused).</exception>
    public static ModelWeights Open(string directory)
    {
        string single = Path.Combine(directory, "model.safetensors");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            Dictionary<string, string> map;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(index));
                map = doc.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new InvalidDataException($"{index}: expected {{\"weight_map\": {{tensor: shard file}}}} ({ex.Message}).", ex);
            }
            var files = new List<SafeTensorsFile>();
            var byShard = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            var byTensor = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            try
            {
                foreach (string shard in map.Values.Distinct(StringComparer.Ordinal))
                {
                    var file = SafeTensorsFile.Open(Path.Combine(directory, shard));
                    files.Add(file);
                    byShard[shard] = file;
                }
                foreach (var (name, shard) in map)
                {
                    var file = byShard[shard];
                    if (!file.Tensors.ContainsKey(name))
                        throw new InvalidDataException($"{index} places '{name}' in {shard}, which does not contain it.");
                    byTensor[name] = file;
                }
            }
            catch
            {
                foreach (var f in files) f.Dispose();
                throw;
            }
            return new ModelWeights(files, byTensor);
        }
        if (File.Exists(single))
        {
            var file = SafeTensorsFile.Open(single);
            return new ModelWeights([file], file.Tensors.Keys.ToDictionary(k => k, _ => file, StringComparer.Ordinal));
        }
        var pickled = PickledCheckpoints.FirstOrDefault(f => File.Exists(Path.Combine(directory, f)));
        throw new FileNotFoundException(pickled is not null
            ? $"{directory} has only a pickled checkpoint ({pickled}); pickles are never loaded (they can run code). Convert it to safetensors (save_pretrained(..., safe_serialization=True))."
            : $"{directory}: no model.safetensors or model.safetensors.index.json; expected Hugging Face weights in safetensors format.", single);
    }

    /// <summary>Whether a tensor exists.</summary>
    public bool Contains(string name) => _byTensor.ContainsKey(name);

    /// <summary>The stored dtype and shape of a tensor.</summary>
    public SafeTensorInfo Info(string name) => _byTensor[name].Tensors[name];

    /// <summary>Loads a tensor onto a device in a dtype.</summary>
    public Tensor Load(string name, Device? device = null, ScalarType? dtype = null) => _byTensor[name].Load(name, device, dtype);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}

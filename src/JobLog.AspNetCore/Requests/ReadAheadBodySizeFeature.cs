using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// Stands in for the server's body size limit once JobLog has read the start of the body ahead. The server refuses a
/// new limit once its body is being read, and JobLog's read-ahead started reading it: an endpoint that sets its own
/// limit before it reads (an upload lifting it, as ASP.NET Core's docs show) would get InvalidOperationException. Until
/// the endpoint reads, the limit stays writable, as without JobLog: a limit the declared length fits in changes nothing
/// (the read-ahead only ran for a length within the server's limit, and the server holds the body to that length); a
/// limit below the declared length makes the endpoint's first read a 413, as the server's would.
/// </summary>
internal sealed class ReadAheadBodySizeFeature(IHttpMaxRequestBodySizeFeature inner, RequestBodyCapture body, long declared)
    : IHttpMaxRequestBodySizeFeature
{
    private bool _set;
    private long? _limit;

    public IHttpMaxRequestBodySizeFeature Inner => inner;

    public bool IsReadOnly => body.EndpointHasRead;

    public long? MaxRequestBodySize
    {
        get => _set ? _limit : inner.MaxRequestBodySize;
        set
        {
            if (IsReadOnly)
            {
                throw new InvalidOperationException("The maximum request body size cannot be modified after the app has already started reading from the request body.");
            }

            if (!inner.IsReadOnly)
            {
                inner.MaxRequestBodySize = value;
                return;
            }

            _set = true;
            _limit = value;
            body.RefuseOver(value is { } max && declared > max ? max : null);
        }
    }
}

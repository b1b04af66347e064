<img class="img-fluid preview-image border" src="{{download}}" alt="{{name}}, a result of the job" loading="lazy">

package plugin

import (
	"errors"
	"io/fs"
	"net/http"
	"os"

	"github.com/xp2p/xp2p/config"
)

// static_file serves the files of a directory (localPath) under stripPrefix, with basic auth if
// httpUser is set. The directory is opened as an os.Root: no path, symbolic links included,
// leads out of it.
func init() { register(config.PluginStaticFile, newStaticFile) }

type staticFile struct {
	*httpPlugin
	root *os.Root
}

func newStaticFile(o *config.PluginOptions, env Options) (Plugin, error) {
	root, err := os.OpenRoot(o.LocalPath)
	if err != nil {
		return nil, err
	}
	var h http.Handler = http.FileServerFS(inside{root.FS()})
	if o.StripPrefix != "" {
		h = http.StripPrefix(o.StripPrefix, h)
	}
	return &staticFile{httpPlugin: newHTTPPlugin(basicAuth(o.HTTPUser, o.HTTPPassword, env.ViaVhost, h), nil, env.Log), root: root}, nil
}

// inside answers a path that leads out of the directory (a symbolic link to elsewhere) as one
// that does not exist: 404, as for any missing file.
type inside struct{ fs.FS }

func (f inside) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return file, err
}

func (p *staticFile) Close() error {
	err := p.httpPlugin.Close()
	p.root.Close()
	return err
}

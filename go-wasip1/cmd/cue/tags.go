package main

import (
	"fmt"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
)

// A field marked @tag(NAME[, type=string|int|number|bool][, short=A|B]):
// `-t NAME=VALUE` unifies the field with VALUE, `-t A` with "A". This is
// what cue/load does; cue/load itself does not build for wasip1.
type tagField struct {
	name   string
	kind   string
	shorts []string
	field  *ast.Field
}

func findTags(files []*ast.File) ([]*tagField, error) {
	var found []*tagField
	var err error
	for _, file := range files {
		ast.Walk(file, func(n ast.Node) bool {
			field, ok := n.(*ast.Field)
			if !ok || err != nil {
				return err == nil
			}
			for _, attr := range field.Attrs {
				if key, _ := attr.Split(); key != "tag" {
					continue
				}
				var tag *tagField
				if tag, err = parseTagAttr(attr); err != nil {
					return false
				}
				tag.field = field
				found = append(found, tag)
			}
			return true
		}, nil)
	}
	return found, err
}

func parseTagAttr(attr *ast.Attribute) (*tagField, error) {
	_, body := attr.Split()
	parts := strings.Split(body, ",")
	tag := &tagField{name: strings.TrimSpace(parts[0]), kind: "string"}
	if !ast.IsValidIdent(tag.name) {
		return nil, fmt.Errorf("%s: invalid tag name %q", attr.Pos(), tag.name)
	}
	for _, part := range parts[1:] {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "type":
			switch value {
			case "string", "int", "number", "bool":
				tag.kind = value
			default:
				return nil, fmt.Errorf("%s: invalid tag type %q", attr.Pos(), value)
			}
		case "short":
			tag.shorts = strings.Split(value, "|")
		}
	}
	return tag, nil
}

// literalFor turns VALUE into a CUE literal of the tag's type.
func (t *tagField) literalFor(value string) (ast.Expr, error) {
	switch t.kind {
	case "int", "number":
		var info literal.NumInfo
		if err := literal.ParseNum(value, &info); err != nil {
			return nil, fmt.Errorf("invalid number %q for tag %q", value, t.name)
		}
		if info.IsInt() {
			return ast.NewLit(token.INT, value), nil
		}
		if t.kind == "int" {
			return nil, fmt.Errorf("invalid int %q for tag %q", value, t.name)
		}
		return ast.NewLit(token.FLOAT, value), nil
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("invalid boolean %q for tag %q", value, t.name)
		}
		return ast.NewBool(b), nil
	}
	return ast.NewString(value), nil
}

// injectTags applies every -t argument; a tag no file declares is an error.
func injectTags(files []*ast.File, args []string) error {
	if len(args) == 0 {
		return nil
	}
	tags, err := findTags(files)
	if err != nil {
		return err
	}
	for _, arg := range args {
		name, value, keyed := strings.Cut(arg, "=")
		used := false
		for _, tag := range tags {
			matches := keyed && tag.name == name
			if !keyed {
				for _, short := range tag.shorts {
					matches = matches || short == arg
				}
				value = arg
			}
			if !matches {
				continue
			}
			x, err := tag.literalFor(value)
			if err != nil {
				return err
			}
			tag.field.Value = ast.NewBinExpr(token.AND, tag.field.Value, x)
			used = true
		}
		if !used {
			return fmt.Errorf("no tag for %q", name)
		}
	}
	return nil
}
